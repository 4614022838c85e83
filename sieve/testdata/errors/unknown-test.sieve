if frob "x" { keep; }
