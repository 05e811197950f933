"""The Qt face of Kafka CDC Studio: windows, panels and the signal bridge."""

from gui.workarounds import make_singletons_immortal

make_singletons_immortal()
