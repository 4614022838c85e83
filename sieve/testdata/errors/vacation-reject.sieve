require ["vacation", "body"];
vacation :days "7" "x";
vacation :seconds 7 "x";
if body :raw :text "x" { keep; }
