keep;
require "fileinto";
if true { require "reject"; }
