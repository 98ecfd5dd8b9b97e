"""Closed sets a resource config chooses from: GPU pools and models, CPU instance types, data centers,
CUDA versions, scaler strategies. Members and values are those of the Flash SDK (runpod-flash 1.21)."""

from __future__ import annotations

from enum import Enum

__all__ = [
    "CPU_DATACENTERS",
    "CpuInstanceType",
    "CudaVersion",
    "DataCenter",
    "GpuGroup",
    "GpuType",
    "ServerlessScalerType",
    "ServerlessType",
]


class _StrEnum(str, Enum):
    """A str enum whose str() and format() are its value on every Python version.

    (Python 3.11 changed format() of mixed-in enums; names built with f-strings must not depend on it.)
    """

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class GpuGroup(_StrEnum):
    """GPU pools a worker may be scheduled on."""

    ANY = "any"
    ADA_24 = "ADA_24"
    ADA_32_PRO = "ADA_32_PRO"
    ADA_48_PRO = "ADA_48_PRO"
    ADA_80_PRO = "ADA_80_PRO"
    AMPERE_16 = "AMPERE_16"
    AMPERE_24 = "AMPERE_24"
    AMPERE_48 = "AMPERE_48"
    AMPERE_80 = "AMPERE_80"
    HOPPER_141 = "HOPPER_141"
    BLACKWELL_96 = "BLACKWELL_96"
    BLACKWELL_180 = "BLACKWELL_180"

    @classmethod
    def all(cls) -> list[GpuGroup]:
        """Every pool, which is what ANY stands for."""
        return [m for m in cls if m is not cls.ANY]


class GpuType(_StrEnum):
    """GPU models a worker may be scheduled on; each belongs to one pool of GpuGroup."""

    ANY = "any"
    NVIDIA_GEFORCE_RTX_4090 = "NVIDIA GeForce RTX 4090"
    NVIDIA_GEFORCE_RTX_5090 = "NVIDIA GeForce RTX 5090"
    NVIDIA_RTX_6000_ADA_GENERATION = "NVIDIA RTX 6000 Ada Generation"
    NVIDIA_RTX_PRO_6000_BLACKWELL_SERVER_EDITION = "NVIDIA RTX PRO 6000 Blackwell Server Edition"
    NVIDIA_RTX_PRO_6000_BLACKWELL_WORKSTATION_EDITION = "NVIDIA RTX PRO 6000 Blackwell Workstation Edition"
    NVIDIA_RTX_PRO_6000_BLACKWELL_MAX_Q_WORKSTATION_EDITION = "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition"
    NVIDIA_H100_80GB_HBM3 = "NVIDIA H100 80GB HBM3"
    NVIDIA_RTX_A4000 = "NVIDIA RTX A4000"
    NVIDIA_RTX_A4500 = "NVIDIA RTX A4500"
    NVIDIA_RTX_4000_ADA_GENERATION = "NVIDIA RTX 4000 Ada Generation"
    NVIDIA_RTX_2000_ADA_GENERATION = "NVIDIA RTX 2000 Ada Generation"
    NVIDIA_RTX_A5000 = "NVIDIA RTX A5000"
    NVIDIA_L4 = "NVIDIA L4"
    NVIDIA_GEFORCE_RTX_3090 = "NVIDIA GeForce RTX 3090"
    NVIDIA_A40 = "NVIDIA A40"
    NVIDIA_RTX_A6000 = "NVIDIA RTX A6000"
    NVIDIA_A100_80GB_PCIe = "NVIDIA A100 80GB PCIe"
    NVIDIA_A100_SXM4_80GB = "NVIDIA A100-SXM4-80GB"
    NVIDIA_H200 = "NVIDIA H200"
    NVIDIA_B200 = "NVIDIA B200"

    @classmethod
    def all(cls) -> list[GpuType]:
        return [m for m in cls if m is not cls.ANY]


class DataCenter(_StrEnum):
    """Runpod's data centers."""

    US_CA_2 = "US-CA-2"
    US_IL_1 = "US-IL-1"
    US_KS_2 = "US-KS-2"
    US_MO_1 = "US-MO-1"
    US_MO_2 = "US-MO-2"
    US_NC_2 = "US-NC-2"
    US_NE_1 = "US-NE-1"
    US_WA_1 = "US-WA-1"
    EU_CZ_1 = "EU-CZ-1"
    EU_RO_1 = "EU-RO-1"
    EUR_NO_1 = "EUR-NO-1"

    @classmethod
    def all(cls) -> list[DataCenter]:
        return list(cls)

    @classmethod
    def from_string(cls, text: str) -> DataCenter:
        """`"eu_ro_1"`, `" EU-RO-1 "` -> EU_RO_1, as the SDK reads a data center's name."""
        value = text.strip().upper().replace("_", "-")
        for member in cls:
            if member.value == value:
                return member
        raise ValueError(f"unknown data center '{text}'; valid: {', '.join(m.value for m in cls)}")


CPU_DATACENTERS = frozenset({DataCenter.EU_RO_1})
"""Where CPU endpoints can run."""


class CudaVersion(_StrEnum):
    """The lowest CUDA version a GPU worker's host must have."""

    V11_8 = "11.8"
    V12_0 = "12.0"
    V12_1 = "12.1"
    V12_2 = "12.2"
    V12_3 = "12.3"
    V12_4 = "12.4"
    V12_5 = "12.5"
    V12_6 = "12.6"
    V12_7 = "12.7"
    V12_8 = "12.8"
    V12_9 = "12.9"
    V13_0 = "13.0"


class CpuInstanceType(_StrEnum):
    """CPU worker shapes: generation, family (g general, c compute), vCPUs, GB of RAM."""

    CPU3G_1_4 = "cpu3g-1-4"
    CPU3G_2_8 = "cpu3g-2-8"
    CPU3G_4_16 = "cpu3g-4-16"
    CPU3G_8_32 = "cpu3g-8-32"
    CPU3C_1_2 = "cpu3c-1-2"
    CPU3C_2_4 = "cpu3c-2-4"
    CPU3C_4_8 = "cpu3c-4-8"
    CPU3C_8_16 = "cpu3c-8-16"
    CPU5C_1_2 = "cpu5c-1-2"
    CPU5C_2_4 = "cpu5c-2-4"
    CPU5C_4_8 = "cpu5c-4-8"
    CPU5C_8_16 = "cpu5c-8-16"
    # The seed's examples name these two shapes as well.
    CPU5C_4_16 = "cpu5c-4-16"
    CPU5G_2_8 = "cpu5g-2-8"


class ServerlessScalerType(_StrEnum):
    """How an endpoint decides to add workers."""

    QUEUE_DELAY = "QUEUE_DELAY"
    REQUEST_COUNT = "REQUEST_COUNT"


class ServerlessType(_StrEnum):
    """Queue-based (jobs) or load-balanced (HTTP routes)."""

    QB = "QB"
    LB = "LB"
