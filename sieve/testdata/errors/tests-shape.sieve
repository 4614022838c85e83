if allof true { keep; }
if not (true, false) { keep; }
if true false { keep; }
if keep { keep; }
header "a" "b";
