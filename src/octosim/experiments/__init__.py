"""octosim.experiments"""
