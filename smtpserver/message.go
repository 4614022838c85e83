package smtpserver

// bareLineEnd reports whether the message holds a LF not preceded by CR or a CR not
// followed by LF. Such bytes are how SMTP smuggling hides a second message inside the
// first for a hop that ends DATA on "<LF>.<LF>" or similar.
func bareLineEnd(b []byte) bool {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\r':
			if i+1 >= len(b) || b[i+1] != '\n' {
				return true
			}
			i++
		case '\n':
			return true
		}
	}
	return false
}
