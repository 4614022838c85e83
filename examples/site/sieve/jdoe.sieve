# examples/site: the user jdoe's own filter (the local channel's
# "filter ssrd:$A" names sieve/<mailbox>.sieve). Mail from the siroe.com
# partners goes to its own folder, flagged; everyone else gets one vacation
# answer a week while jdoe is away.
require ["fileinto", "imap4flags", "vacation"];
if address :domain :is "From" "siroe.com" {
  fileinto :flags "\\Flagged" "Partners/Siroe";
  stop;
}
vacation :days 7 :subject "Away until Monday"
  "I am away until Monday and will read your message then.";
