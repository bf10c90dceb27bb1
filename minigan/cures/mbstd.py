"""Minibatch standard deviation (Karras et al. 2018, ProGAN): a layer of D."""
from .base import BadOption, Cure, count


class MinibatchStdDev(Cure):
    """minigan.layers.MinibatchStdDev(GROUP) before D's flatten (built by minigan.models): the
    spread of a group of samples as one extra feature, so D sees a collapsed batch."""
    name = "mbstd"
    options = (count("mbstd", None, 1, "minibatch standard deviation as an extra feature of D (Karras et al. "
                     "2018), groups of GROUP (4 with no value)", metavar="GROUP", nargs="?", const=4),)

    @classmethod
    def on(cls, values):
        return bool(values["mbstd"])

    def __init__(self, values):
        self.group, self.pack = values["mbstd"], values["pack"]

    def discriminator(self):
        return {"mbstd": self.group}

    def check_data(self, batch_size, shape):
        seen = batch_size // self.pack  # the batch D's minibatch layers see
        if seen % min(self.group, seen):
            raise BadOption(f"mbstd={self.group}: expected the batch D sees (batch size / pack = {seen}) to be a "
                            f"multiple of the group", f"--mbstd {self.group}: expected the batch D sees "
                            f"(--batch-size / --pack = {seen}) to be a multiple of the group")
