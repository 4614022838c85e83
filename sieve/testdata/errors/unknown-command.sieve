require "fileinto";
fileinto "a";
frobnicate "x";
