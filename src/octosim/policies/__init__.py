"""octosim.policies"""
