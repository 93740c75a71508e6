"""Reading hidden states: running prompts, the logit lens, trajectories (imports torch)."""
