"""inril_core: the ROS-free IN-RIL learning core (torch + numpy only; never imports rclpy or a simulator)."""
