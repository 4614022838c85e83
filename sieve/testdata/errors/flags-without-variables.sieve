require "imap4flags";
setflag "myvar" "\\Seen";
