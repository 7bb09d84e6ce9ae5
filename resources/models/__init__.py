"""The models that ship with Attention Studio, one folder each (installed as the package
`attention_studio_models`, so a wheel finds them through importlib.resources)."""
