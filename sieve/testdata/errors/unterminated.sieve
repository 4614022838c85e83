keep;
discard "oops;
