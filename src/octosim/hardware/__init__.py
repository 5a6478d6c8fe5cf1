"""octosim.hardware"""
