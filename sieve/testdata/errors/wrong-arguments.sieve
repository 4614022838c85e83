require "fileinto";
fileinto ["a", "b"];
fileinto;
fileinto "a" "b";
if size 100 { keep; }
if size :over "100" { keep; }
if header "subject" { keep; }
