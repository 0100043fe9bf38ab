"""Axis: a working simulator of a national document interchange axis (edXML, QCVN 102:2016)."""

__version__ = "0.1.0"
