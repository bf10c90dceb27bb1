"""PacGAN (Lin et al. 2018): D judges M samples at once, packed along channels."""
from .base import BadOption, Cure, count


class Pack(Cure):
    """minigan.layers.Pack(M) at D's front (built by minigan.models): consecutive groups of M
    samples become one input of D, whose first layer widens M times. The batch must be a
    multiple of M."""
    name = "pack"
    options = (count("pack", 1, 1, "PacGAN (Lin et al. 2018): D judges M samples at once; 1 is off.",
                     metavar="M"),)

    @classmethod
    def on(cls, values):
        return values["pack"] > 1

    def __init__(self, values):
        self.m = values["pack"]

    def discriminator(self):
        return {"pack": self.m}

    def check_data(self, batch_size, shape):
        if batch_size % self.m:
            raise BadOption(f"pack={self.m}: expected a batch size that is a multiple of it, got {batch_size}",
                            f"--pack {self.m}: expected --batch-size to be a multiple of it, got {batch_size}")
