"""inril's ROS 2 nodes: thin rclpy adapters that turn messages into numpy and call inril_core (DESIGN.md §4).

The topic names, message types and QoS every node agrees on live in `interfaces`; message <-> numpy conversions
in `convert`; the shared process entry point in `runtime`. docs/graph.md describes the graph as a whole.
"""
