"""A consumer that stops leaves its group, also in the group's first generation (Tansu's 0).

Without it (aiokafka leaves only a generation above 0), the member stayed in the group after it stopped, and
the next consumer of that group, a service serving again after an outage, waited about 18 s for it to lapse
(``shared.kafka_group``).
"""

from __future__ import annotations

import asyncio
import secrets

from aiokafka.admin import AIOKafkaAdminClient

from shared import kafka
from shared.config import Settings


async def _members(admin: AIOKafkaAdminClient, group: str) -> list[str]:
    (described,) = await admin.describe_consumer_groups([group])
    ((error, *_, members),) = described.groups
    assert error == 0, described
    return [member[0] for member in members]


async def test_a_stopped_consumer_leaves_its_group_in_generation_zero(servers: dict[str, str]) -> None:
    settings = Settings(kafka_bootstrap=servers["KAFKA_BOOTSTRAP"], topic_suffix=f".t{secrets.token_hex(4)}")
    group = f"leave-{secrets.token_hex(4)}"
    named = settings.topic(group)  # the group's name at the broker, as ``consumer_client`` gives it
    admin = kafka.admin_client(settings)
    await admin.start()
    try:
        await kafka.create_topics(settings)  # the run's topics; any one will do for a group
        consumer = kafka.consumer_client(settings, group)
        consumer.subscribe([settings.topic("order-requests")])
        await consumer.start()
        try:
            async with asyncio.timeout(30):
                while not consumer.assignment():  # noqa: ASYNC110 - aiokafka has no event for it
                    await asyncio.sleep(0.05)
            joined = consumer._coordinator.generation  # the generation is what this is about
            assert await _members(admin, named), "joined, so a member"
        finally:
            await consumer.stop()
        assert await _members(admin, named) == [], f"left at generation {joined}"
    finally:
        await admin.close()
