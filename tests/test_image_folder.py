"""The one image-folder dataset (modeledit/image_folder.py): its identity follows the folder's content and
preprocessing, and is the statistics key."""
from __future__ import annotations

import os
import time

from PIL import Image


def test_changing_a_file_changes_the_identity(photo_folder, photos):
    from modeledit.eval.datasets import FolderDataset, dataset_key, load_dataset
    from modeledit.image_folder import ImageFolder

    root = photo_folder
    ds = load_dataset(str(root), class_names=["dog", "cat"], size=32)
    assert isinstance(ds, FolderDataset) and isinstance(ds, ImageFolder)
    assert ds[0][1] == 1  # the class folder gives the label
    key = dataset_key(str(root), ds)
    assert isinstance(type(ds).identity, property)
    assert dataset_key(str(root), load_dataset(str(root), class_names=["dog", "cat"], size=32)) == key  # stable
    # rewrite one file with other pixels (same name)
    Image.fromarray(photos["rocket"][:96, :96]).save(root / "cat" / "1.png")
    os.utime(root / "cat" / "1.png", ns=(time.time_ns(), time.time_ns() + 10**9))
    key2 = dataset_key(str(root), load_dataset(str(root), class_names=["dog", "cat"], size=32))
    assert key2 != key
    # add a file, change the preprocessing: other keys again
    Image.fromarray(photos["rocket"][:64, :64]).save(root / "cat" / "9.png")
    key3 = dataset_key(str(root), load_dataset(str(root), class_names=["dog", "cat"], size=32))
    assert len({key, key2, key3, dataset_key(str(root), load_dataset(str(root), class_names=["dog", "cat"], size=48))}) == 4
    # the world's datasets name themselves the same way (a property), so the bench keys both alike
    world = load_dataset("world:train:8")
    assert isinstance(type(world).identity, property) and dataset_key("world:train:8", world).startswith("world:train:8|world:")
