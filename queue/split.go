package queue

import "slices"

// SplitBySender makes one envelope per envelope sender. senders[i] is the sender
// of base.Rcpts[i]'s copy ("" or base.From: the message's own): recipients that
// came through a list with an owner get their own copy, whose bounces go to the
// owner. Envelopes come in the order of their first recipient; each is a shallow
// copy of base with its own From and Rcpts. The SMTP server and local submission
// both split this way, so a list behaves the same whichever way mail arrives.
func SplitBySender(base *Envelope, senders []string) []*Envelope {
	if !slices.ContainsFunc(senders, func(s string) bool { return s != "" && s != base.From }) {
		// the common case, kept free of the map below
		e := *base
		return []*Envelope{&e}
	}
	var envs []*Envelope
	bySender := map[string]*Envelope{}
	for i, rc := range base.Rcpts {
		sender := base.From
		if i < len(senders) && senders[i] != "" {
			sender = senders[i]
		}
		env := bySender[sender]
		if env == nil {
			e := *base
			e.From, e.Rcpts = sender, nil
			env = &e
			bySender[sender] = env
			envs = append(envs, env)
		}
		env.Rcpts = append(env.Rcpts, rc)
	}
	return envs
}
