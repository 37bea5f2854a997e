//! Availability Zone rebalancing (ECS's `availabilityZoneRebalancing`, ENABLED unless a
//! service says DISABLED). A steady service whose tasks are spread unevenly over the zones it
//! can use (more than one task between the fullest and the emptiest zone) starts one task in
//! the emptiest zone; once that task is healthy (the planner's healthy floor waits for it) the
//! excess task is stopped in the fullest zone. One task moves at a time, within
//! `maximumPercent`, until the zones are balanced. Decisions here; the Service controller
//! applies them. Messages are ECS's service events.

use std::collections::BTreeMap;

use super::{EcsEvent, task_list};

/// Tasks per zone, every zone the service can use listed (0 where it has none).
pub type ZoneTasks = BTreeMap<String, usize>;

/// Balanced: at most one task between the fullest and the emptiest zone.
pub fn is_balanced(zones: &ZoneTasks) -> bool {
    let (Some(min), Some(max)) = (zones.values().min(), zones.values().max()) else {
        return true;
    };
    max - min <= 1
}

/// The zone to start a task in: the one with the fewest tasks (the first by name among equals).
pub fn short_zone(zones: &ZoneTasks) -> Option<&str> {
    zones
        .iter()
        .min_by_key(|(z, n)| (**n, z.as_str()))
        .map(|(z, _)| z.as_str())
}

/// The zones to stop a task in: those with the most tasks.
pub fn long_zones(zones: &ZoneTasks) -> Vec<&str> {
    let max = zones.values().max().copied().unwrap_or(0);
    zones
        .iter()
        .filter(|(_, n)| **n == max)
        .map(|(z, _)| z.as_str())
        .collect()
}

/// The candidates in the fullest zones, where a rebalance stops its excess task (all of them
/// when no candidate's zone is known).
pub fn in_fullest_zones<'a, T>(
    candidates: &[&'a T],
    zone: impl Fn(&T) -> Option<String>,
) -> Vec<&'a T> {
    let mut by_zone = ZoneTasks::new();
    for t in candidates {
        if let Some(z) = zone(t) {
            *by_zone.entry(z).or_default() += 1;
        }
    }
    let long = long_zones(&by_zone);
    let out: Vec<&T> = candidates
        .iter()
        .copied()
        .filter(|t| zone(t).is_some_and(|z| long.contains(&z.as_str())))
        .collect();
    if out.is_empty() {
        candidates.to_vec()
    } else {
        out
    }
}

/// "2 tasks in us-east-1a, 1 in us-east-1b, and 0 in us-east-1c" (`tasks` after every count
/// when `each`, as ECS writes the balanced form).
fn spread(zones: &ZoneTasks, each: bool) -> String {
    let parts: Vec<String> = zones
        .iter()
        .enumerate()
        .map(|(i, (z, n))| {
            if i == 0 || each {
                format!("{n} tasks in {z}")
            } else {
                format!("{n} in {z}")
            }
        })
        .collect();
    match parts.len() {
        0 => String::new(),
        1 => parts[0].clone(),
        2 => format!("{} and {}", parts[0], parts[1]),
        n => format!("{}, and {}", parts[..n - 1].join(", "), parts[n - 1]),
    }
}

/// SERVICE_REBALANCING_STARTED.
pub fn not_balanced(service: &str, zones: &ZoneTasks) -> String {
    format!(
        "service ({service}) is not AZ balanced with {}. AZ Rebalancing in progress.",
        spread(zones, false)
    )
}

/// SERVICE_REBALANCING_COMPLETED.
pub fn balanced(service: &str, zones: &ZoneTasks) -> String {
    format!(
        "service ({service}) is AZ balanced with {}.",
        spread(zones, true)
    )
}

/// TASKS_STARTED.
pub fn started<'a>(service: &str, zone: &str, tasks: impl IntoIterator<Item = &'a str>) -> String {
    let tasks: Vec<&str> = tasks.into_iter().collect();
    format!(
        "{service} has started {} tasks in {zone} to AZ Rebalance: {}.",
        tasks.len(),
        task_list(tasks)
    )
}

/// TASKS_STOPPED.
pub fn stopped<'a>(service: &str, zone: &str, tasks: impl IntoIterator<Item = &'a str>) -> String {
    let tasks: Vec<&str> = tasks.into_iter().collect();
    format!(
        "{service} has stopped {} running tasks in {zone} due to AZ rebalancing: {}.",
        tasks.len(),
        task_list(tasks)
    )
}

/// SERVICE_TASK_PLACEMENT_FAILURE (EC2).
pub fn unable_to_place(service: &str, zone: &str) -> String {
    format!(
        "service ({service}) is unable to place a task in {zone} because no container instance met all of its requirements."
    )
}

/// What the Service controller knows after planning a step.
#[derive(Clone, Debug)]
pub struct Snapshot<'a> {
    pub service: &'a str,
    /// `availabilityZoneRebalancing` is not DISABLED, and the service places its own tasks
    /// (EC2, not DAEMON).
    pub enabled: bool,
    /// A rebalance was under way (status).
    pub in_progress: bool,
    /// The planner found the service steady and has nothing to start or stop.
    pub steady: bool,
    /// The PRIMARY deployment's live tasks per zone, every usable zone listed.
    pub zones: &'a ZoneTasks,
    /// `maximumPercent` leaves room for one more task.
    pub room: bool,
}

/// What to do about the zones now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// Start one PRIMARY task in this zone.
    pub start_in: Option<String>,
    /// Whether a rebalance is under way after this step (status).
    pub in_progress: bool,
    pub events: Vec<EcsEvent>,
}

/// One step of rebalancing: start a task in the emptiest zone of a steady, unbalanced
/// service, or report the end of a rebalance once the zones are balanced. (Stopping the
/// excess task in the fullest zone is the planner's scale-in, once the new task is healthy;
/// the controller points it at [`long_zones`] while `in_progress`.)
pub fn decide(s: &Snapshot) -> Decision {
    if !s.enabled {
        return Decision::default();
    }
    let balanced = is_balanced(s.zones);
    if !s.steady {
        return Decision {
            in_progress: s.in_progress,
            ..Default::default()
        };
    }
    if balanced {
        return Decision {
            in_progress: false,
            events: if s.in_progress {
                vec![EcsEvent::normal(self::balanced(s.service, s.zones))]
            } else {
                Vec::new()
            },
            start_in: None,
        };
    }
    match short_zone(s.zones) {
        Some(zone) if s.room => Decision {
            start_in: Some(zone.to_string()),
            in_progress: true,
            events: if s.in_progress {
                Vec::new()
            } else {
                vec![EcsEvent::normal(not_balanced(s.service, s.zones))]
            },
        },
        // No room above desired (maximumPercent 100): it stays as it is.
        _ => Decision {
            in_progress: false,
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot<'a>(zones: &'a ZoneTasks, in_progress: bool, steady: bool) -> Snapshot<'a> {
        Snapshot {
            service: "web",
            enabled: true,
            in_progress,
            steady,
            zones,
            room: true,
        }
    }

    #[test]
    fn an_unbalanced_steady_service_starts_one_task_in_the_emptiest_zone() {
        let z = zones(&[("us-east-1a", 2), ("us-east-1b", 1), ("us-east-1c", 0)]);
        let d = decide(&snapshot(&z, false, true));
        assert_eq!(d.start_in.as_deref(), Some("us-east-1c"));
        assert!(d.in_progress);
        assert_eq!(d.events, [EcsEvent::normal(not_balanced("web", &z))]);
        // Under way: no second "not AZ balanced" event.
        let again = decide(&snapshot(&z, true, true));
        assert_eq!(again.start_in.as_deref(), Some("us-east-1c"));
        assert!(again.events.is_empty());
    }

    #[test]
    fn nothing_moves_while_the_service_is_not_steady() {
        let z = zones(&[("a", 3), ("b", 0)]);
        let d = decide(&snapshot(&z, true, false));
        assert_eq!(d.start_in, None);
        assert!(
            d.in_progress,
            "the stop of the excess task is still to come"
        );
    }

    #[test]
    fn a_rebalance_ends_with_ecs_event_once_balanced() {
        let z = zones(&[("a", 1), ("b", 1), ("c", 1)]);
        let d = decide(&snapshot(&z, true, true));
        assert_eq!(d.start_in, None);
        assert!(!d.in_progress);
        assert_eq!(d.events, [EcsEvent::normal(balanced("web", &z))]);
        // Balanced from the start: silent.
        assert_eq!(decide(&snapshot(&z, false, true)), Decision::default());
    }

    #[test]
    fn disabled_or_without_room_it_stays_put() {
        let z = zones(&[("a", 2), ("b", 0)]);
        let off = Snapshot {
            enabled: false,
            ..snapshot(&z, true, true)
        };
        assert_eq!(decide(&off), Decision::default());
        let full = Snapshot {
            room: false,
            ..snapshot(&z, false, true)
        };
        assert_eq!(decide(&full), Decision::default());
    }

    fn zones(pairs: &[(&str, usize)]) -> ZoneTasks {
        pairs.iter().map(|(z, n)| (z.to_string(), *n)).collect()
    }

    #[test]
    fn one_task_apart_is_balanced() {
        assert!(is_balanced(&zones(&[("a", 1), ("b", 1), ("c", 1)])));
        assert!(is_balanced(&zones(&[("a", 2), ("b", 1), ("c", 1)])));
        assert!(!is_balanced(&zones(&[("a", 2), ("b", 1), ("c", 0)])));
        assert!(is_balanced(&ZoneTasks::new()));
    }

    #[test]
    fn start_in_the_emptiest_stop_in_the_fullest() {
        let z = zones(&[("us-east-1a", 2), ("us-east-1b", 1), ("us-east-1c", 0)]);
        assert_eq!(short_zone(&z), Some("us-east-1c"));
        assert_eq!(long_zones(&z), ["us-east-1a"]);
        let tie = zones(&[("a", 0), ("b", 3), ("c", 3)]);
        assert_eq!(short_zone(&tie), Some("a"));
        assert_eq!(long_zones(&tie), ["b", "c"]);
    }

    #[test]
    fn the_excess_stop_is_chosen_in_the_fullest_zone() {
        let tasks = [
            ("t1", "a"),
            ("t2", "a"),
            ("t3", "b"),
            ("t4", "c"),
            ("t5", "?"),
        ];
        let refs: Vec<&(&str, &str)> = tasks.iter().collect();
        let zone = |t: &(&str, &str)| (t.1 != "?").then(|| t.1.to_string());
        fn names(v: Vec<&(&'static str, &'static str)>) -> Vec<&'static str> {
            v.iter().map(|t| t.0).collect()
        }
        assert_eq!(names(in_fullest_zones(&refs, zone)), ["t1", "t2"]);
        // No zone known: any candidate.
        let unknown: Vec<&(&str, &str)> = refs[4..].to_vec();
        assert_eq!(names(in_fullest_zones(&unknown, zone)), ["t5"]);
    }

    #[test]
    fn events_are_ecs_words() {
        let before = zones(&[("us-east-1a", 2), ("us-east-1b", 1), ("us-east-1c", 0)]);
        assert_eq!(
            not_balanced("web", &before),
            "service (web) is not AZ balanced with 2 tasks in us-east-1a, 1 in us-east-1b, and 0 in us-east-1c. AZ Rebalancing in progress."
        );
        let after = zones(&[("us-east-1a", 1), ("us-east-1b", 1), ("us-east-1c", 1)]);
        assert_eq!(
            balanced("web", &after),
            "service (web) is AZ balanced with 1 tasks in us-east-1a, 1 tasks in us-east-1b, and 1 tasks in us-east-1c."
        );
        assert_eq!(
            started("web", "us-east-1c", ["web-x"]),
            "web has started 1 tasks in us-east-1c to AZ Rebalance: (task web-x)."
        );
        assert_eq!(
            stopped("web", "us-east-1a", ["web-y"]),
            "web has stopped 1 running tasks in us-east-1a due to AZ rebalancing: (task web-y)."
        );
        assert_eq!(
            balanced("web", &zones(&[("a", 1), ("b", 2)])),
            "service (web) is AZ balanced with 1 tasks in a and 2 tasks in b."
        );
    }
}
