"""The one trainer for every family, its optimizer/schedule helpers, EMA and checkpoints."""
