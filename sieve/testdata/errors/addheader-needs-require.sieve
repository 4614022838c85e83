addheader "X-A: 1";
