"""The Qt face of Kafka CDC Studio: windows, panels and the signal bridge."""
