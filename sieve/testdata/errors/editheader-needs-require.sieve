require "addheader";
addheader "X-A" "1";
addheader "X-B: 2";
