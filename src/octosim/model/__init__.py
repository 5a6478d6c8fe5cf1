"""octosim.model"""
