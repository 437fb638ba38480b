"""Reading the master's /dir/status: volume ids as weed 4.48 writes them, and copies missing."""

from __future__ import annotations

from cluster import under_replicated, volume_ids


def status(*nodes: str, layouts: list | None = None) -> dict:
    data_nodes = [
        {"Url": f"127.0.0.1:{8080 + i}", "VolumeIds": ids} for i, ids in enumerate(nodes)
    ]
    return {
        "Topology": {
            "DataCenters": [{"Racks": [{"DataNodes": data_nodes}]}],
            "Layouts": layouts or [],
        }
    }


class TestVolumeIds:
    def test_ranges_and_single_ids_as_weed_writes_them(self):
        # Measured: a node with volumes 1 to 12 reports " 1-12"; one disk per space-joined list.
        assert volume_ids(" 1-6 9 12-14") == {1, 2, 3, 4, 5, 6, 9, 12, 13, 14}
        assert volume_ids(" 1-12") == set(range(1, 13))

    def test_an_empty_node_holds_nothing(self):
        assert volume_ids(" ") == set()

    def test_a_list_weed_cut_short_is_unknown(self):
        assert volume_ids(" 1-100 ...") is None


class TestUnderReplicated:
    def test_a_node_back_empty_leaves_every_volume_one_copy_short(self):
        # Measured with weed 4.48: the emptied node reports " " while the other still has all.
        assert under_replicated(status(" ", " 1-12"), "001") == list(range(1, 13))

    def test_whole_volumes_in_ranges_are_not_short(self):
        assert under_replicated(status(" 1-6 13-18", " 1-6 13-18"), "001") == []

    def test_a_collections_layout_overrides_the_store_replication(self):
        layouts = [{"collection": "b", "replication": "000", "writables": [7]}]
        assert under_replicated(status(" 7", " ", layouts=layouts), "001") == []

    def test_a_truncated_list_claims_nothing(self):
        assert under_replicated(status(" 1-100 ...", " 1-50"), "001") == []
