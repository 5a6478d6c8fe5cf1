"""octosim.engine"""
