use agora_ledger::{apply_block, check_header, init_genesis, Error, MemStorage};
use agora_types::{Block, Hash, TxBody};

use super::harness::{genesis, id, Net};

fn check_refused(net: &mut Net, block: Block, expected: fn(&Error) -> bool) {
    let before = net.storage.clone();
    let err = check_header(&net.storage, &block).unwrap_err();
    assert!(expected(&err), "{err:?}");
    let err = apply_block(&mut net.storage, &block).unwrap_err();
    assert!(expected(&err), "{err:?}");
    assert_eq!(net.storage, before, "a refused block must write nothing");
}

#[test]
fn blocks_with_wrong_height_parent_roots_or_time_are_refused_and_write_nothing() {
    let mut net = Net::new();
    net.block(Vec::new());
    let txs = vec![net.tx(
        "alice",
        TxBody::Transfer {
            to: id("bob"),
            amount: 1,
        },
    )];
    let good = Block {
        header: net.header(&txs),
        txs,
    };
    assert_eq!(check_header(&net.storage, &good), Ok(()));

    let mut block = good.clone();
    block.header.height += 1;
    check_refused(&mut net, block, |e| matches!(e, Error::Height { .. }));
    let mut block = good.clone();
    block.header.parent = Hash::of(b"elsewhere");
    check_refused(&mut net, block, |e| matches!(e, Error::Parent { .. }));
    let mut block = good.clone();
    block.header.state_root = Hash::of(b"wrong");
    check_refused(&mut net, block, |e| matches!(e, Error::StateRoot { .. }));
    let mut block = good.clone();
    block.txs.clear();
    check_refused(&mut net, block, |e| matches!(e, Error::TxRoot { .. }));
    let mut block = good.clone();
    block.header.timestamp_ms = 0;
    check_refused(&mut net, block, |e| matches!(e, Error::Timestamp { .. }));

    let outcome = apply_block(&mut net.storage, &good).unwrap();
    assert!(outcome.txs[0].result.is_ok());
    assert_eq!(
        outcome.state_root,
        agora_ledger::proof::state_root(&net.storage).unwrap()
    );
    assert_eq!(
        outcome.state_root,
        agora_ledger::proof::compute_state_root(&net.storage).unwrap()
    );
}

#[test]
fn genesis_twice_and_blocks_before_genesis_are_refused() {
    let mut storage = MemStorage::new();
    let net = Net::new();
    let block = Block {
        header: net.header(&[]),
        txs: Vec::new(),
    };
    assert_eq!(
        apply_block(&mut storage, &block).unwrap_err(),
        Error::NotInitialized
    );
    init_genesis(&mut storage, &genesis()).unwrap();
    assert_eq!(
        init_genesis(&mut storage, &genesis()).unwrap_err(),
        Error::AlreadyInitialized
    );
}

#[test]
fn inconsistent_genesis_is_refused() {
    let mut twice = genesis();
    twice.accounts.push(twice.accounts[0]);
    assert!(matches!(
        init_genesis(&mut MemStorage::new(), &twice),
        Err(Error::InvalidGenesis(_))
    ));
    let mut understaked = genesis();
    understaked.providers[0].stake = 1;
    assert!(matches!(
        init_genesis(&mut MemStorage::new(), &understaked),
        Err(Error::InvalidGenesis(_))
    ));
    let mut unknown_model = genesis();
    unknown_model.models.clear();
    assert!(matches!(
        init_genesis(&mut MemStorage::new(), &unknown_model),
        Err(Error::InvalidGenesis(_))
    ));
}

#[test]
fn same_blocks_give_same_root_on_two_fresh_ledgers() {
    let mut first = Net::new();
    let mut second = Net::new();
    for n in 0..5u128 {
        let txs = vec![
            first.tx(
                "alice",
                TxBody::Transfer {
                    to: id("bob"),
                    amount: n + 1,
                },
            ),
            first.tx("bob", TxBody::Bond { amount: 10 }),
        ];
        let header = first.header(&txs);
        let block = Block { header, txs };
        let a = apply_block(&mut first.storage, &block).unwrap();
        let b = apply_block(&mut second.storage, &block).unwrap();
        assert_eq!(a, b);
        for net in [&mut first, &mut second] {
            net.height = block.header.height;
            net.parent = block.hash();
            net.root = a.state_root;
            net.time = block.header.timestamp_ms;
        }
    }
    assert_eq!(first.storage, second.storage);
}
