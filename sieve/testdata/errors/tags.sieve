if header :frob "subject" "x" { keep; }
if header :is :contains "subject" "x" { keep; }
if header :comparator "subject" "x" { keep; }
if header :is :is "subject" "x" { keep; }
if header "subject" :is "x" { keep; }
if address :user "from" "x" { keep; }
