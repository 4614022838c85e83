require ["variables", "imap4flags"];
set "1" "x";
set "a-b" "x";
set :lower :upper "a" "x";
set "a" "${env.name}";
