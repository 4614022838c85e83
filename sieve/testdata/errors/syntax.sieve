if header :is "subject" "x" {
  fileinto "a"
}
