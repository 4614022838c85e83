if size 10K { keep; }
if size :under :over 10K { keep; }
