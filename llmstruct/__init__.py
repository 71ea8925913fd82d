"""llmstruct: grounded structuring of Chinese government reports."""

__version__ = "0.1.0"
