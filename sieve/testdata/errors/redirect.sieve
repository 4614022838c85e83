redirect "not an address";
redirect :notify "SOMETIMES" "a@example.com";
redirect :notify ["NEVER", "SUCCESS"] "a@example.com";
redirect :resent :noresent "a@example.com";
redirect :copy "a@example.com";
