"""Balancer evaluation (issue 15): scenarios, the engine on the simulator's physics, the
policies side by side, the offline optimum, the metrics and figures."""
