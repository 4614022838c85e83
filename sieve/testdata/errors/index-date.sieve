require ["date", "index"];
if header :last "subject" "x" { keep; }
if header :index 0 "subject" "x" { keep; }
if date "date" "century" "21" { keep; }
if date :zone "CET" "date" "year" "2026" { keep; }
if date :zone "+0100" :originalzone "date" "year" "2026" { keep; }
