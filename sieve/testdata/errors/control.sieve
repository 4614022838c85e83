elsif true { keep; }
else { keep; }
if true keep;
if (true) { keep; }
if { keep; }
if true { keep; } else true { keep; }
stop { keep; }
