require ["addtag", "addheader", "jettison", "editheader"];
addtag "a|b";
addheader "no colon here";
addheader :last "X-A: 1";
addheader "bad name" "v";
deleteheader "Received";
spamadjust "1";
jettison "now";
