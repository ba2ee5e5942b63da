"""Placeholder: being written."""

def ate_power(*args, **kwargs):
    raise NotImplementedError("ate_power is not available yet")


def ate_sample_size(*args, **kwargs):
    raise NotImplementedError("ate_sample_size is not available yet")


