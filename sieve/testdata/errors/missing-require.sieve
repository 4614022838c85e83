fileinto "Junk";
if envelope :is "from" "a@example.com" { reject "no"; }
