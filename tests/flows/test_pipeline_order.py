"""The training split's order on a local Ray cluster: a new order every epoch, the same sequence of
orders for the same seed."""

from components.data.pipeline.stream import build_dataset
from components.data.release.dataset import PreparedDataset
from components.data.release.table import ensure_table, ray_rows
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


def test_a_split_is_read_in_the_blocks_asked_for_each_the_same_size(ray_cluster, tiny_dataset):
    """An epoch's shuffle moves whole blocks: a split read in fewer, larger blocks than asked for would
    keep longer runs of rows in file order (the reader cuts every file's read, not the split's)."""
    root, _, _ = tiny_dataset
    table = ensure_table(str(root))
    rows = table.split("train").rows
    read = ray_rows(table, "train", blocks=rows // 2).materialize()
    sizes = [metadata.num_rows for bundle in read.iter_internal_ref_bundles() for metadata in bundle.metadata]
    assert len(table.files("train")) == 1 and len(sizes) == rows // 2
    assert set(sizes) == {2} and read.count() == rows
