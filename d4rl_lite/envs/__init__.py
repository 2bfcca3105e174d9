"""Env copies and what drives them: the vector env, the policy protocol and random policy, maze
geometry, and environments of our own (registered with Gymnasium by ``d4rl_lite.tasks``)."""
