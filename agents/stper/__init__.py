"""STPer (green CPN): the GCN + LSTM network, PPO, the baselines and the experiments."""
