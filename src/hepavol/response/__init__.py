"""Response assessment: RECIST 1.1, volumetric response and tumour growth rate (pure functions, no imaging)."""
