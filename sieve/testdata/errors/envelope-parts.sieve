require "envelope";
if envelope :is "sender" "a@example.com" { keep; }
