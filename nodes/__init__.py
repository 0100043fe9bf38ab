"""The agency side of Axis: the node client (``axis-node``) and, later, simulated agencies."""
