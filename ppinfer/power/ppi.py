"""Placeholder: being written."""

def ppi_power(*args, **kwargs):
    raise NotImplementedError("ppi_power is not available yet")


def ppi_sample_size(*args, **kwargs):
    raise NotImplementedError("ppi_sample_size is not available yet")


