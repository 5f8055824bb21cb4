"""TTOSC (two-timescale MEC): the GRU networks, multi-agent DDQN, DDPG, the baselines and the experiments."""
