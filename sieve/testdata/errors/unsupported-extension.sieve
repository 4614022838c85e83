require ["fileinto", "notify", "mailbox"];
