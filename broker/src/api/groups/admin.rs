//! DescribeGroups, ListGroups and DeleteGroups.

use super::*;

pub fn describe_groups(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DescribeGroupsRequest = decode_or_close!(ctx, body);
    let coordinator = coordinator(broker);
    let groups = request
        .groups
        .into_iter()
        .map(|group_id| {
            let described = match &coordinator {
                Ok(c) => c.describe(&group_id),
                Err(_) => Ok(GroupDescription::dead(&group_id)),
            };
            let mut group = DescribedGroup::default().with_group_id(group_id);
            group.authorized_operations = if request.include_authorized_operations {
                GROUP_AUTHORIZED_OPERATIONS
            } else {
                i32::MIN
            };
            match described {
                Err(e) => group.with_error_code(code(e)).with_group_state(s("")),
                Ok(d) => group
                    .with_group_state(s(d.state.name()))
                    .with_protocol_type(s(d.protocol_type))
                    .with_protocol_data(s(d.protocol_name))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(s(m.member_id))
                                    .with_group_instance_id(m.group_instance_id.map(s))
                                    .with_client_id(s(m.client_id))
                                    .with_client_host(s(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    let response = DescribeGroupsResponse::default().with_groups(groups);
    Reply::Now(encode(&response, ctx.version))
}

pub fn list_groups(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: ListGroupsRequest = decode_or_close!(ctx, body);
    let version = ctx.version;
    let listed = match coordinator(broker) {
        Ok(c) => c.list(),
        Err(_) => Ok(Vec::new()),
    };
    let response = match listed {
        Err(e) => ListGroupsResponse::default().with_error_code(code(e)),
        Ok(groups) => {
            let states: Vec<Option<GroupState>> = request
                .states_filter
                .iter()
                .map(|f| GroupState::parse(f))
                .collect();
            // Every group here speaks the classic protocol (KIP-848's "consumer" type is
            // not served).
            let classic_wanted = request.types_filter.is_empty()
                || request
                    .types_filter
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case("classic"));
            ListGroupsResponse::default().with_groups(
                groups
                    .into_iter()
                    .filter(|g| states.is_empty() || states.contains(&Some(g.state)))
                    .filter(|_| classic_wanted)
                    .map(|g| {
                        let mut listed = ListedGroup::default()
                            .with_group_id(GroupId(s(g.group_id)))
                            .with_protocol_type(s(g.protocol_type));
                        if version >= 4 {
                            listed.group_state = s(g.state.name());
                        }
                        if version >= 5 {
                            listed.group_type = s("classic");
                        }
                        listed
                    })
                    .collect(),
            )
        }
    };
    Reply::Now(encode(&response, version))
}

pub fn delete_groups(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DeleteGroupsRequest = decode_or_close!(ctx, body);
    let version = ctx.version;
    let coordinator = coordinator(broker);
    Reply::Apply(Box::pin(async move {
        let mut results = Vec::with_capacity(request.groups_names.len());
        for group_id in request.groups_names {
            let outcome = match &coordinator {
                Ok(c) => c.delete_group(&group_id).await,
                Err(_) => Err(GroupError::GroupIdNotFound),
            };
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(group_id)
                    .with_error_code(outcome.err().map_or(0, code)),
            );
        }
        encode(
            &DeleteGroupsResponse::default().with_results(results),
            version,
        )
    }))
}
