require "relational";
if header :comparator "i;unknown" "subject" "x" { keep; }
if header :comparator "i;ascii-numeric" "x-priority" "1" { keep; }
if header :value "bigger" "x-priority" "1" { keep; }
