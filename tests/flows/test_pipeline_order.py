"""The training split's order on a local Ray cluster: a new order every epoch, the same sequence of
orders for the same seed."""

from components.data.pipeline.stream import build_dataset
from components.data.release.dataset import PreparedDataset
from components.data.release.table import ensure_table
from components.data.transforms.encoding import EncodeSpec


def test_the_shuffled_order_follows_the_seed(ray_cluster, tiny_dataset):
    """As Ray Train reads it (``data.preserve_order``): in the order the blocks were shuffled into."""
    import ray

    root, _, tokenizer = tiny_dataset
    options = ray.data.DataContext.get_current().execution_options
    options.preserve_order, was = True, options.preserve_order

    def epochs(seed: int) -> list[list[str]]:
        spec = EncodeSpec(grid=2)
        prepared = PreparedDataset(str(root), f"{root}/images", ensure_table(str(root)), tokenizer)
        dataset = build_dataset(prepared, "train", spec, shuffle=True, seed=seed, batch_size=2)
        return [[str(row["image_id"]) for row in dataset.iter_rows()] for _ in range(2)]

    try:
        first, again, other = epochs(3), epochs(3), epochs(4)
    finally:
        options.preserve_order = was
    assert sorted(first[0]) == sorted(first[1]) and first[0] != first[1]  # every epoch a new order
    assert again == first  # the same seed: the same orders, epoch by epoch
    assert other[0] != first[0]
